/* api_signal.c: event ingest (SignalEvent and its REST twin). */
#include "api.h"

const hk_api_route hk_signal_routes[] = {
    {NULL, NULL, NULL, 0},
};
const size_t hk_signal_routes_count = 0;
