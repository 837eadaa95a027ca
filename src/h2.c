#include "autoconf.h"
#include "h2.h"

/* Placeholder until the HTTP/2 core lands; -Wmissing-prototypes wants this. */
void h2_placeholder(void);
void h2_placeholder(void) {}
