
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gpugate_models_list_has, and of the two lists built on
 * it: a key's allowed models ("*" allows all, ids may hold spaces) and
 * the tunnel's model lists (empty serves any model).
 */


#include <string.h>

#include "gpugate_models.h"
#include "gpugate_oai_body.h"
#include "gpugate_tunnel_proto.h"
#include "tap.h"


static int
has(const char *list, const char *model, const char *seps)
{
    return gpugate_models_list_has(list, strlen(list), model, strlen(model),
                                   seps);
}


static int
key_allows(const char *list, const char *model)
{
    return gpugate_oai_model_allowed(list, strlen(list), model,
                                     strlen(model));
}


static int
agent_has(const char *list, const char *model)
{
    return gpugate_tunnel_models_has(list, strlen(list), model,
                                     strlen(model));
}


int
main(void)
{
    tap_ok(has("a,b,c", "a", ",") && has("a,b,c", "b", ",")
           && has("a,b,c", "c", ","), "every id of a list, first to last");
    tap_ok(!has("ab,bc", "a", ",") && !has("ab,bc", "b", ",")
           && !has("a,b", "ab", ",") && !has("a,b", "a,b", ","),
           "a prefix, a suffix or two ids are not an id");
    tap_ok(has(",,a,,", "a", ",") && !has(",,", "x", ",")
           && !has("", "x", ","), "empty ids between separators skipped");
    tap_ok(has("a, b ,  c", "c", GPUGATE_MODELS_SEP_WIRE)
           && !has("a, b", " b", GPUGATE_MODELS_SEP_WIRE),
           "wire lists: runs of \",\" and spaces separate");
    tap_ok(has("my model,x", "my model", GPUGATE_MODELS_SEP_KEY)
           && !has("my model,x", "my", GPUGATE_MODELS_SEP_KEY),
           "key lists: an id may hold spaces");

    tap_ok(key_allows("*", "anything") && !key_allows("**", "anything")
           && !key_allows("", "m"), "a key's \"*\" allows all, nothing else");
    tap_ok(key_allows("m1,m2", "m2") && !key_allows("m1,m2", "m3"),
           "a key's list: exact ids");

    tap_ok(agent_has("", "m") && agent_has(" , ", "m"),
           "an agent's empty list serves any model");
    tap_ok(agent_has("q-7b, llama", "llama")
           && !agent_has("q-7b, llama", "llam"),
           "an agent's list: exact ids");

    return tap_done();
}
