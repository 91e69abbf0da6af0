//! Vedette's e2e harness: a real kube-apiserver, etcd and kube-controller-manager on loopback.
