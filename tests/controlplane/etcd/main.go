// Command etcd is the etcd server, built from the published module so the
// test control plane needs no binary download. It is kept in a module of
// its own so that Kubernetes' dependency versions do not leak into etcd's.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
