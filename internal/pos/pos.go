// Package pos is where something was written in a configuration file, and
// the errors and warnings that say so. It is a leaf: the configuration
// front ends, the option codec and the DHCP compiler all share it without
// depending on one another.
package pos

import (
	"fmt"
	"strconv"
	"strings"
)

// Pos is where a declaration was written, for messages. Line and Column
// are 1-based; 0 means unknown.
type Pos struct {
	File         string
	Line, Column int
}

// String formats p as "file:line:column", "file" when the line is unknown,
// and "" for the zero Pos.
func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return ""
	case p.Line == 0:
		return p.File
	default:
		return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Column)
	}
}

// Errorf returns an *Error at p.
func (p Pos) Errorf(format string, args ...any) *Error {
	return &Error{File: p.File, Line: p.Line, Column: p.Column, Msg: fmt.Sprintf(format, args...)}
}

// Error is a configuration error with its position.
type Error struct {
	File         string
	Line, Column int // 0 when unknown
	Msg          string
}

// Pos is where the error is.
func (e *Error) Pos() Pos { return Pos{File: e.File, Line: e.Line, Column: e.Column} }

func (e *Error) Error() string {
	switch {
	case e.File == "" && e.Line == 0:
		return e.Msg
	case e.Line == 0:
		return e.File + ": " + e.Msg
	default:
		return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": " + e.Msg
	}
}

// Errors is a list of configuration errors, reported together.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Warning is a problem that does not stop pxed, with where it was written.
type Warning struct {
	Pos Pos
	Msg string
}

// String formats the warning as "file:line:column: msg", or just msg when
// the position is unknown.
func (w Warning) String() string {
	if p := w.Pos.String(); p != "" {
		return p + ": " + w.Msg
	}
	return w.Msg
}
