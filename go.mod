module pxed

go 1.26.0

require (
	golang.org/x/net v0.62.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.49.0
)
