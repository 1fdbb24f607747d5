# GRADFLOW_GIT_COMMIT: the commit the source tree is at (12 hex digits, "-dirty" with uncommitted changes),
# or "unknown" when it is not a git checkout or git is missing. Read at configure time.
set(GRADFLOW_GIT_COMMIT "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE _gradflow_commit
                  RESULT_VARIABLE _gradflow_git_rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_gradflow_git_rc EQUAL 0 AND _gradflow_commit)
    set(GRADFLOW_GIT_COMMIT "${_gradflow_commit}")
    execute_process(COMMAND ${GIT_EXECUTABLE} diff-index --quiet HEAD --
                    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} RESULT_VARIABLE _gradflow_dirty ERROR_QUIET)
    if(NOT _gradflow_dirty EQUAL 0)
      string(APPEND GRADFLOW_GIT_COMMIT "-dirty")
    endif()
  endif()
endif()
