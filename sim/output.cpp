#include "gradflow/output.hpp"
