module pxed

go 1.26.0

require (
	golang.org/x/net v0.62.0
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/sys v0.49.0

require (
	github.com/insomniacslk/dhcp v0.0.0-20260901064844-234b97448fae // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
)
