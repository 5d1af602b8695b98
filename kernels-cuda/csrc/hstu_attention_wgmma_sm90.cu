// Fused HSTU attention on Hopper warpgroup MMAs (wgmma) with TMA loads: work in progress.
#include "hstu_params.h"
