package events

import (
	"fmt"
	"testing"
	"time"
)

func TestRingKeepsTheLatest(t *testing.T) {
	r := New(4)
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		r.Add(Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: "tftp", Host: fmt.Sprint("h", i%2), Detail: fmt.Sprint(i)})
	}
	all := r.List(nil, 0)
	if len(all) != 4 || all[0].Detail != "6" || all[3].Detail != "9" {
		t.Fatalf("after 10 events in a ring of 4: %+v, want 6..9 oldest first", all)
	}
	h1 := r.List(func(e Event) bool { return e.Host == "h1" }, 0)
	if len(h1) != 2 || h1[0].Detail != "7" || h1[1].Detail != "9" {
		t.Fatalf("h1: %+v, want 7 and 9", h1)
	}
	if last := r.List(nil, 1); len(last) != 1 || last[0].Detail != "9" {
		t.Fatalf("limit 1: %+v", last)
	}
	if got := New(3).List(nil, 0); len(got) != 0 {
		t.Fatalf("an empty ring lists %+v", got)
	}
}
