package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// namespaceSlots bounds the follow-ups under way: one per namespace, so
// that a tenant whose relay never answers holds one slot however many of
// its imports owe a report, and limit in all. A key that found no slot
// waits; a slot freed wakes every key that waited for it, and those that
// still find none wait again.
type namespaceSlots struct {
	limit int

	mu   sync.Mutex
	busy map[string]types.NamespacedName
	// waiting are the keys that found their namespace busy, by namespace,
	// and those that found every slot taken.
	waiting    map[string]map[types.NamespacedName]struct{}
	waitingAny map[types.NamespacedName]struct{}
}

func newNamespaceSlots(limit int) *namespaceSlots {
	return &namespaceSlots{limit: limit, busy: map[string]types.NamespacedName{},
		waiting: map[string]map[types.NamespacedName]struct{}{}, waitingAny: map[types.NamespacedName]struct{}{}}
}

// acquire takes key's namespace's slot, or notes that key waits for it.
func (s *namespaceSlots) acquire(key types.NamespacedName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.busy[key.Namespace]; taken {
		if s.waiting[key.Namespace] == nil {
			s.waiting[key.Namespace] = map[types.NamespacedName]struct{}{}
		}
		s.waiting[key.Namespace][key] = struct{}{}
		return false
	}
	if len(s.busy) >= s.limit {
		s.waitingAny[key] = struct{}{}
		return false
	}
	s.busy[key.Namespace] = key
	return true
}

// release frees key's slot and returns the keys that waited for a slot.
func (s *namespaceSlots) release(key types.NamespacedName) []types.NamespacedName {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[key.Namespace] == key {
		delete(s.busy, key.Namespace)
	}
	var wake []types.NamespacedName
	for k := range s.waiting[key.Namespace] {
		wake = append(wake, k)
	}
	delete(s.waiting, key.Namespace)
	for k := range s.waitingAny {
		wake = append(wake, k)
	}
	clear(s.waitingAny)
	return wake
}
