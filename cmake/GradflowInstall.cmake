# cmake --install build --prefix P: the CLI (P/bin/gradflow), the layer libraries and the headers under the
# target gradflow::gradflow, the CMake package (P/lib/cmake/gradflow: find_package(gradflow) finds Eigen3,
# OpenMP, toml++, nlohmann_json and OpenBLAS itself), and the plot tools (P/share/gradflow/tools). The Python
# package is installed by python/CMakeLists.txt.
include(CMakePackageConfigHelpers)
set(GRADFLOW_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/gradflow)

foreach(layer ${GRADFLOW_LAYERS})
  set_target_properties(gradflow_${layer} PROPERTIES EXPORT_NAME ${layer})
endforeach()
set_target_properties(gradflow_spectra PROPERTIES EXPORT_NAME spectra)
list(TRANSFORM GRADFLOW_LAYERS PREPEND gradflow_ OUTPUT_VARIABLE _gradflow_layer_targets)
install(TARGETS gradflow ${_gradflow_layer_targets} gradflow_spectra EXPORT gradflowTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS gradflow_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/gradflow DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(EXPORT gradflowTargets NAMESPACE gradflow:: DESTINATION ${GRADFLOW_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/gradflowConfig.cmake.in ${PROJECT_BINARY_DIR}/gradflowConfig.cmake
                              INSTALL_DESTINATION ${GRADFLOW_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/gradflowConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/gradflowConfig.cmake ${PROJECT_BINARY_DIR}/gradflowConfigVersion.cmake
        DESTINATION ${GRADFLOW_INSTALL_CMAKEDIR})

install(PROGRAMS tools/plot_heatmap.py tools/plot_series.py tools/plot_spectrum.py tools/plot_verdicts.py
        DESTINATION ${CMAKE_INSTALL_DATADIR}/gradflow/tools)
