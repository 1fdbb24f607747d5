#pragma once
// What build this is: the version (written once, in CMakeLists.txt's project(VERSION)) and the git commit
// it was configured from. Defined in a source file generated at configure time (cmake/version.cpp.in), so a
// new commit recompiles one file.

namespace gradflow {

/// "MAJOR.MINOR.PATCH", as project(gradflow VERSION ...) says.
const char* version();
/// The git commit the build was configured from (12 hex digits, "-dirty" when the tree had changes), or
/// "unknown" outside a git checkout (a source tarball).
const char* git_commit();

}  // namespace gradflow
