package leasetest_test

import (
	"testing"

	"pxed/internal/lease"
	"pxed/internal/lease/leasetest"
)

func TestStoreConformance(t *testing.T) {
	leasetest.Conformance(t, func(*testing.T) lease.Store { return leasetest.New() }, true)
}
