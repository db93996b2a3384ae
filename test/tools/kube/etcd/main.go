// Command etcd is the upstream etcd server, built from the same etcd release
// that kube-apiserver is tested against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
