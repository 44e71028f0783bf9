// One reader of a JS model config (native/engine-api.ts ModelConfig plus the family features of
// native/checkpoint/families.ts) for every binding file; errors name the field ("config.mlp: ...").
#pragma once
#include <napi.h>

#include "../model.h"

engine::ModelConfig model_config_from(const Napi::Value& value);
