# The node plane's protocols, wire-compatible with Constellation (constellation.md §2): init
# (bootstrapper :9000), join (join service :30090), kms (key service), verify (verification service),
# recoverproto (disk-mapper recovery server :9999), components (Kubernetes component pins).
ct_protoc_c(ct-proto-node PROTOS components.proto init.proto join.proto keyservice.proto verify.proto recover.proto)
