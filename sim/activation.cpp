#include "gradflow/activation.hpp"
