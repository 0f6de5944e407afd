# etcd v3's KV and Cluster messages (schemas/etcd.proto), spoken by lib/etcd: the control planes'
# shared state (docs/node.md "The shared store").
ct_protoc_c(ct-proto-etcd PROTOS etcd.proto)
