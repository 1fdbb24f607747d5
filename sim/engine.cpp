#include "gradflow/engine.hpp"
