/* api_sync.c: synchronous invocations: SuperOffice Test/TestWebhook and the EnergyCAP custom actions. */
#include "api.h"

const hk_api_route hk_sync_routes[] = {
    {NULL, NULL, NULL, 0},
};
const size_t hk_sync_routes_count = 0;
