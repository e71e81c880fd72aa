// The C header and the C++ wrapper compile alone as C++17.
#include "liminal.h"
#include "liminal.hpp"

int main() { return liminal_status_name(LIMINAL_OK) == nullptr; }
