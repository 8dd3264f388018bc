/* api_ivanti.c: the Ivanti dialect (/api/rest): Execute. */
#include "api.h"

const hk_api_route hk_ivanti_routes[] = {
    {NULL, NULL, NULL, 0},
};
const size_t hk_ivanti_routes_count = 0;
