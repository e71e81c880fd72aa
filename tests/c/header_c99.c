/* The header compiles alone as strict C99. */
#include "liminal.h"

int main(void) { return liminal_status_name(LIMINAL_OK) == 0; }
