# openapi.cmake: builds src/api/openapi.json into the binary. At build time
# src/embed.cmake turns the document into a C array in the build directory
# (no tool beyond CMake), compiled into the api layer, where api_docs.c serves
# it at GET /openapi.json. Editing the document rebuilds only that file.
set(HOOKD_OPENAPI_JSON ${CMAKE_SOURCE_DIR}/src/api/openapi.json)
set(HOOKD_OPENAPI_C ${CMAKE_BINARY_DIR}/generated/openapi_json.c)
add_custom_command(
  OUTPUT ${HOOKD_OPENAPI_C}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${HOOKD_OPENAPI_JSON} -DOUTPUT=${HOOKD_OPENAPI_C} -DSYMBOL=hk_openapi_json
          -DHEADER=api_docs.h -P ${CMAKE_SOURCE_DIR}/src/embed.cmake
  DEPENDS ${HOOKD_OPENAPI_JSON} ${CMAKE_SOURCE_DIR}/src/embed.cmake
  COMMENT "Embedding src/api/openapi.json"
  VERBATIM)
target_sources(hk_api PRIVATE ${HOOKD_OPENAPI_C})
