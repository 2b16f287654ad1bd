package csvread

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestArena reads a file in batches into an arena reset between batches
// and checks that each batch's records, used before the reset, are the
// ones read without an arena: plain, quoted, doubled-quote and multi-line
// fields, empty fields, a bad record, and records larger than a block.
func TestArena(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,name,note\n")
	for i := range 2000 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "%d,name%d,plain\n", i, i)
		case 1:
			fmt.Fprintf(&b, "%d,\"quoted, %d\",\"say \"\"hi\"\"\"\n", i, i)
		case 2:
			fmt.Fprintf(&b, "%d,,\"two\nlines %d\"\n", i, i)
		case 3:
			fmt.Fprintf(&b, "%d,big,%s\n", i, strings.Repeat("x", 70<<10+i))
		case 4:
			fmt.Fprintf(&b, "%d,too,many,fields\n", i)
		}
	}
	data := []byte(b.String())
	opts := Options{Header: true, MaxLineBytes: 1 << 20}
	want := readAll(t, open(t, data, opts))

	r := open(t, data, opts)
	var a Arena
	r.SetArena(&a)
	var got []item
	for done := false; !done; {
		a.Reset()
		var batch []item
		for len(batch) < 37 {
			rec, err := r.Next()
			if err == io.EOF {
				done = true
				break
			}
			it := item{Start: rec.Offset, StartLine: rec.Line, Off: r.Offset(), Line: r.Line()}
			if le, ok := err.(*LineError); ok {
				it.Start, it.StartLine, it.Err = le.Offset, le.Line, le.Msg
			} else if err != nil {
				t.Fatal(err)
			}
			if rec.Fields != nil {
				it.Fields = rec.Fields
			}
			batch = append(batch, it)
		}
		// Copy the batch's values before the next Reset invalidates them.
		for _, it := range batch {
			if it.Fields != nil {
				it.Fields = append([]string{}, it.Fields...)
				for i, f := range it.Fields {
					it.Fields[i] = strings.Clone(f)
				}
			}
			got = append(got, it)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d items with an arena, %d without", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("item %d with an arena:\n%v\nwithout:\n%v", i, got[i], want[i])
		}
	}
	if !reflect.DeepEqual(r.Header(), []string{"id", "name", "note"}) {
		t.Fatalf("header %q", r.Header())
	}
}

// TestArenaReuse checks that a reset arena reads the next records without
// allocating a string per record.
func TestArenaReuse(t *testing.T) {
	var b strings.Builder
	b.WriteString("a,b,c\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "%d,value %d,\"quoted %d\"\n", i, i, i)
	}
	r := open(t, []byte(b.String()), Options{Header: true})
	var a Arena
	r.SetArena(&a)
	next := func() {
		for range 500 {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
		a.Reset()
	}
	next() // sizes the arena
	if n := testing.AllocsPerRun(20, next); n > 2 {
		t.Fatalf("%v allocations per 500 records with a reset arena, want at most 2", n)
	}
}
