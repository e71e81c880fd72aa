/* Shared by the C examples: stop with the library's detail on a failure. */
#ifndef LIMINAL_EXAMPLE_H
#define LIMINAL_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>

#include "liminal.h"

#define TRY(expr)                                                              \
    do {                                                                       \
        liminal_status s_ = (expr);                                            \
        if (s_ != LIMINAL_OK) {                                                \
            fprintf(stderr, "%s failed: %s (%s)\n", #expr,                     \
                    liminal_status_name(s_), liminal_last_error());            \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#endif
