// One reader of a JS MaskSpec (core/schema.ts) for every binding file: checks each field and
// names it in a one-line error ("mask.block_size: must be an integer"), then the spec's rules.
#pragma once
#include <napi.h>

#include "../block_mask.h"

engine::MaskSpec mask_spec_from(const Napi::Value& value);
