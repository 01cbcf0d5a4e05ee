package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// group runs pxed's servers under one supervisor: a server that fails
// stops all the others (half a boot server is worse than none), every
// server started is waited for, and every failure is reported.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

func newGroup(ctx context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

// Go runs fn until the group's context ends; an error from fn (other than
// the context's own) stops the group.
func (g *group) Go(name string, fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(g.ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
			g.cancel()
		}
	}()
}

// Wait waits for the group's context to end (the caller's, or a failure),
// then for every server to return, and returns their failures.
func (g *group) Wait() error {
	<-g.ctx.Done()
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}
