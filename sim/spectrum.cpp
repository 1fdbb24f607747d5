#include "gradflow/spectrum.hpp"
