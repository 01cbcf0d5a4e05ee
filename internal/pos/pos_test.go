package pos

import (
	"errors"
	"testing"
)

func TestPosString(t *testing.T) {
	for _, c := range []struct {
		p    Pos
		want string
	}{
		{Pos{}, ""},
		{Pos{File: "a.conf"}, "a.conf"},
		{Pos{File: "a.conf", Line: 3, Column: 7}, "a.conf:3:7"},
		{Pos{Line: 3, Column: 7}, ":3:7"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Msg: "m"}, "m"},
		{&Error{File: "f", Msg: "m"}, "f: m"},
		{&Error{File: "f", Line: 2, Column: 5, Msg: "m"}, "f:2:5: m"},
		{Pos{File: "f", Line: 2, Column: 5}.Errorf("bad %d", 1), "f:2:5: bad 1"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%#v.Error() = %q, want %q", c.e, got, c.want)
		}
	}
	var err error = Errors{{Msg: "a"}, {File: "f", Line: 1, Column: 1, Msg: "b"}}
	if got := err.Error(); got != "a\nf:1:1: b" {
		t.Errorf("Errors.Error() = %q", got)
	}
	var es Errors
	if !errors.As(err, &es) || es[1].Pos() != (Pos{File: "f", Line: 1, Column: 1}) {
		t.Errorf("errors.As / Pos: %v", es)
	}
}

func TestWarningString(t *testing.T) {
	for _, c := range []struct {
		w    Warning
		want string
	}{
		{Warning{Msg: "m"}, "m"},
		{Warning{Pos: Pos{File: "f"}, Msg: "m"}, "f: m"},
		{Warning{Pos: Pos{File: "f", Line: 4, Column: 2}, Msg: "m"}, "f:4:2: m"},
	} {
		if got := c.w.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.w, got, c.want)
		}
	}
}
