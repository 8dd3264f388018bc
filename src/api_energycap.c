/* api_energycap.c: the EnergyCAP dialect (/api/v3, camelCase). */
#include "api.h"

const hk_api_route hk_energycap_routes[] = {
    {NULL, NULL, NULL, 0},
};
const size_t hk_energycap_routes_count = 0;
