//go:build tools

// Package tools pins the Kubernetes commands the test control plane runs.
// It is never compiled into anything; it only keeps k8s.io/kubernetes in
// go.mod so that `go build k8s.io/kubernetes/cmd/...` resolves here.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
