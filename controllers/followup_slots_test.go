package controllers

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestNamespaceSlots(t *testing.T) {
	key := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	s := newNamespaceSlots(2)
	hung1, hung2 := key("hung", "a"), key("hung", "b")
	if !s.acquire(hung1) {
		t.Fatal("the first follow-up of a namespace found no slot")
	}
	if s.acquire(hung2) {
		t.Fatal("a second follow-up of a namespace started while its first was under way")
	}
	other := key("other", "a")
	if !s.acquire(other) {
		t.Fatal("another namespace's follow-up waited for the hung namespace's")
	}
	third := key("third", "a")
	if s.acquire(third) {
		t.Fatal("a follow-up started beyond the bound of 2")
	}
	if wake := s.release(other); !slices.Equal(wake, []types.NamespacedName{third}) {
		t.Fatalf("freeing a slot woke %v, want %v", wake, []types.NamespacedName{third})
	}
	if !s.acquire(third) {
		t.Fatal("the woken follow-up found no slot")
	}
	if got := s.release(third); len(got) != 0 {
		t.Fatalf("a key was woken twice: %v", got)
	}
	if got := s.release(hung1); !slices.Equal(got, []types.NamespacedName{hung2}) {
		t.Fatalf("the end of a namespace's follow-up woke %v, want %v", got, []types.NamespacedName{hung2})
	}
	if !s.acquire(hung2) {
		t.Fatal("the namespace's next follow-up found no slot")
	}
}
