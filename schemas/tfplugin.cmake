# Terraform plugin protocol (tfplugin6.8) and go-plugin's services, for the provider.
set(ts_out ${PROJECT_BINARY_DIR}/schemas/google/protobuf)
file(MAKE_DIRECTORY ${ts_out})
add_custom_command(OUTPUT ${ts_out}/timestamp.pb-c.c ${ts_out}/timestamp.pb-c.h
  COMMAND ${PROTOC_C} -I/usr/include --c_out=${PROJECT_BINARY_DIR}/schemas /usr/include/google/protobuf/timestamp.proto
  DEPENDS /usr/include/google/protobuf/timestamp.proto
  COMMENT "protoc-c google/protobuf/timestamp.proto")
ct_protoc_c(ct-proto-tfplugin PROTOS tfplugin6.proto plugin.proto)
target_sources(ct-proto-tfplugin PRIVATE ${ts_out}/timestamp.pb-c.c)
