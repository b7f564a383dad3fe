// A plain C ABI over FlashMLA's dense sm90 decode (bf16), so that Python can call it through ctypes
// without a torch extension. Built by mlatune/peer.py against a FlashMLA checkout (its headers, and its
// bf16.cu, combine.cu and get_decoding_sched_meta.cu compiled alongside); nothing of FlashMLA is copied here.
//
// Each entry point mirrors csrc/api/dense_decode.h (dense_attn_decode_interface) with the torch parts
// removed: Python allocates every tensor (shapes below) and passes raw device pointers and the stream.
// Return codes: 0 ok, > 0 a cudaError_t (cudaGetLastError after the launches), < 0 an argument rejected
// here (see mlatune_fm_error_string). FlashMLA's own checks still call exit(1) on a failed CUDA call.
#include <cuda_runtime.h>

#include <cmath>
#include <exception>

#include "params.h"
#include "sm90/decode/dense/splitkv_mla.h"
#include "smxx/decode/combine/combine.h"
#include "smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.h"

#define MLATUNE_API extern "C" __attribute__((visibility("default")))

namespace {
enum : int {
    kBadShape = -1,      // batch / heads / head dims / page size not what the kernel supports
    kBadSmParts = -2,    // num_sm_parts outside [1, 160] (the combine kernel handles at most 160)
    kBadBatch = -3,      // batch too large for the metadata kernel's shared memory
    kException = -4,     // a C++ exception from FlashMLA's host code
};
constexpr int kMaxSmParts = 160;                 // combine.cu's MLA_NUM_SPLITS_SWITCH upper bound
constexpr int kMaxSmemPerBlock = 227 * 1024;     // sm90 opt-in shared memory per block
}  // namespace

// ints per sm part in the tile-scheduler metadata: tile_scheduler_metadata is int32 [num_sm_parts, this]
MLATUNE_API int mlatune_fm_sched_meta_size() { return DecodingSchedMetaSize / (int)sizeof(int); }

MLATUNE_API const char* mlatune_fm_error_string(int code) {
    switch (code) {
        case 0: return "ok";
        case kBadShape: return "unsupported shape (need batch > 0, h_q % h_k == 0, d 576, d_v 512, page 64)";
        case kBadSmParts: return "num_sm_parts must be in [1, 160]";
        case kBadBatch: return "batch too large for the scheduler kernel's shared memory";
        case kException: return "C++ exception in FlashMLA host code";
        default: return code > 0 ? cudaGetErrorString((cudaError_t)code) : "unknown error";
    }
}

// Scheduler metadata, as dense_decode.h computes it on the first call (dense: topk = -1, block_size_n = 64,
// fixed overhead 5 blocks). seqlens: int32 [batch]; meta: int32 [num_sm_parts, sched_meta_size];
// num_splits: int32 [batch + 1]. It does not depend on is_causal. num_splits_out is num_splits.
MLATUNE_API int mlatune_fm_get_meta(const int* seqlens, int batch, int s_q, int h_q, int h_k, int num_sm_parts,
                                    void* meta, int* num_splits_out, void* stream) {
    if (batch <= 0 || s_q <= 0 || h_k <= 0 || h_q % h_k != 0) return kBadShape;
    if (num_sm_parts < 1 || num_sm_parts > kMaxSmParts) return kBadSmParts;
    if ((long long)(batch * 5 + 1) * (long long)sizeof(int) > kMaxSmemPerBlock) return kBadBatch;
    try {
        GetDecodeSchedMetaParams p = {
            batch, s_q,
            64,          // block_size_n
            5,           // fixed_overhead_num_blocks
            -1, -1,      // topk, extra_topk: dense
            nullptr, nullptr,
            const_cast<int*>(seqlens),
            (DecodingSchedMeta*)meta,
            num_splits_out,
            num_sm_parts,
            (cudaStream_t)stream
        };
        smxx::decode::run_get_decoding_sched_meta_kernel(p);
    } catch (const std::exception&) {
        return kException;
    }
    return (int)cudaGetLastError();
}

// The splitkv kernel then the combine kernel (PDL-chained, as FlashMLA launches them).
// q: [batch, q_seq_per_hk, h_k, d] after FlashMLA's reshape (q_seq_per_hk = s_q * h_q / h_k), last dim
//    contiguous, strides in elements.
// kcache: [num_blocks, 64, h_k, d], last dim contiguous, strides in elements.
// block_table: int32 [batch, *], last dim contiguous; seqlens: int32 [batch].
// meta / num_splits: from mlatune_fm_get_meta with the same seqlens, batch, s_q, h_q, h_k, num_sm_parts.
// out: contiguous [batch, h_k, q_seq_per_hk, d_v] (q's dtype, bf16); lse: contiguous fp32 [batch, h_k, q_seq_per_hk].
// out_accum: contiguous fp32 [batch + num_sm_parts, h_k, q_seq_per_hk, d_v]; lse_accum: fp32 [batch + num_sm_parts, h_k, q_seq_per_hk].
MLATUNE_API int mlatune_fm_decode(
    const void* q, const void* kcache, const int* block_table, const int* seqlens,
    void* meta, int* num_splits, void* out, float* lse, float* out_accum, float* lse_accum,
    int batch, int s_q, int h_q, int h_k, int d, int d_v, int num_blocks, int page_block_size,
    long long q_batch_stride, long long q_row_stride, long long q_head_stride,
    long long k_batch_stride, long long k_row_stride, long long k_head_stride,
    long long block_table_batch_stride, int num_sm_parts, float softmax_scale, int is_causal, void* stream) {
    if (batch <= 0 || s_q <= 0 || h_k <= 0 || h_q % h_k != 0 || d != 576 || d_v != 512 || page_block_size != 64)
        return kBadShape;  // sm90 dense decode supports only d 576 / d_v 512 (splitkv_mla.cuh asserts it)
    if (num_sm_parts < 1 || num_sm_parts > kMaxSmParts) return kBadSmParts;
    if (s_q == 1) is_causal = 0;

    const int q_head_per_hk = h_q / h_k;
    const int q_seq_per_hk = s_q * q_head_per_hk;
    const int num_heads = h_k;
    const cudaStream_t st = (cudaStream_t)stream;

    DenseAttnDecodeParams params;
    params.b = batch;
    params.s_q = s_q;
    params.q_seq_per_hk = q_seq_per_hk;
    params.seqlens_k_ptr = const_cast<int*>(seqlens);
    params.h_q = h_q;
    params.h_k = h_k;
    params.num_blocks = num_blocks;
    params.q_head_per_hk = q_head_per_hk;
    params.is_causal = is_causal != 0;
    params.d = d;
    params.d_v = d_v;
    params.scale_softmax = softmax_scale;
    params.scale_softmax_log2 = float(softmax_scale * M_LOG2E);
    params.q_ptr = const_cast<void*>(q);
    params.k_ptr = const_cast<void*>(kcache);
    params.o_ptr = out;
    params.softmax_lse_ptr = lse;
    // Strides in elements. out is contiguous [b, h_k, q_seq_per_hk, d_v].
    params.q_batch_stride = q_batch_stride;
    params.k_batch_stride = k_batch_stride;
    params.o_batch_stride = (long long)num_heads * q_seq_per_hk * d_v;
    params.q_row_stride = q_row_stride;
    params.k_row_stride = k_row_stride;
    params.o_row_stride = d_v;
    params.q_head_stride = q_head_stride;
    params.k_head_stride = k_head_stride;
    params.o_head_stride = (long long)q_seq_per_hk * d_v;
    params.block_table = const_cast<int*>(block_table);
    params.block_table_batch_stride = block_table_batch_stride;
    params.page_block_size = page_block_size;
    params.tile_scheduler_metadata_ptr = (DecodingSchedMeta*)meta;
    params.num_sm_parts = num_sm_parts;
    params.num_splits_ptr = num_splits;
    params.total_num_splits = batch + num_sm_parts;
    params.softmax_lseaccum_ptr = lse_accum;
    params.oaccum_ptr = out_accum;
    params.stream = st;

    // Combine strides exactly as dense_decode.h passes them (they index as [b, s_q, h_q], which is the
    // splitkv layout when h_k == 1).
    CombineParams combine_params = {
        batch, s_q,
        h_q, d_v,

        lse,
        out,
        num_heads * q_seq_per_hk, h_q,
        h_q * s_q * d_v, h_q * d_v, d_v,

        lse_accum,
        out_accum,
        num_heads * q_seq_per_hk, h_q,
        h_q * s_q * d_v, h_q * d_v, d_v,

        (DecodingSchedMeta*)meta,
        num_splits,
        num_sm_parts,

        nullptr,  // attn_sink
        st
    };

    try {
        sm90::run_flash_splitkv_mla_kernel<cutlass::bfloat16_t>(params);
        smxx::decode::run_flash_mla_combine_kernel<cutlass::bfloat16_t>(combine_params);
    } catch (const std::exception&) {
        return kException;
    }
    return (int)cudaGetLastError();
}
