#include "gradflow/scenario.hpp"
