# console.cmake: builds the console's files (src/api/console/) into the
# binary. At build time src/embed.cmake turns each into a C array in the
# build directory (no tool beyond CMake), hk_console_<name>_<ext> declared
# in api_console.h, compiled into the api layer, where api_console.c serves
# them under /console/. Editing a file rebuilds only its array.
set(HOOKD_CONSOLE_FILES index.html console.css console.js webhooks.js deliveries.js activity.js)
foreach(file ${HOOKD_CONSOLE_FILES})
  string(REPLACE "." "_" symbol "hk_console_${file}")
  set(input ${CMAKE_SOURCE_DIR}/src/api/console/${file})
  set(output ${CMAKE_BINARY_DIR}/generated/console_${file}.c)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DSYMBOL=${symbol} -DHEADER=api_console.h -P
            ${CMAKE_SOURCE_DIR}/src/embed.cmake
    DEPENDS ${input} ${CMAKE_SOURCE_DIR}/src/embed.cmake
    COMMENT "Embedding src/api/console/${file}"
    VERBATIM)
  target_sources(hk_api PRIVATE ${output})
endforeach()
