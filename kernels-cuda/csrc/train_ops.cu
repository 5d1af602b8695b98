// Kernels of the fused GPU training step (hstu-spec sections 1 and 7) that elementwise.cu lacks.
#include <stdint.h>
