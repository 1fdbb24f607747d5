#include "gradflow/metrics.hpp"
