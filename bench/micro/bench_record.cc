// Seal and open of one record per suite and record size, through the real
// record layer (engine/record/record.c). Bytes per second are plaintext bytes.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "engine/record/sx_record.h"
}

namespace {

// A fixed, non-secret traffic secret: the cost of sealing does not depend on
// the key's value.
const uint8_t kSecret[SX_SECRET_LEN] = {
	0x62, 0x65, 0x6e, 0x63, 0x68, 0x2d, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x2d, 0x6e, 0x6f, 0x74,
	0x2d, 0x61, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
};

// Largest ratchet interval a HELLO may carry (2^36): a run seals far less,
// but a ratchet inside a run would still be counted, as in a real transfer.
const uint64_t kRotate = 1ull << 36;

// Aim for this much sealed data in the open benchmark's ring, so the ring is
// re-sealed (timer paused) rarely even for small records.
const size_t kRingBytes = 4u << 20;

// Fails the benchmark with the record layer's sentence.
bool check(benchmark::State &st, int rc, const sx_err &err)
{
	if (rc == 0)
		return true;
	st.SkipWithError(err.msg);
	return false;
}

struct Dir {
	sx_rdir d;
	Dir() { std::memset(&d, 0, sizeof(d)); }
	~Dir() { sx_rdir_free(&d); }
	Dir(const Dir &) = delete;
	Dir &operator=(const Dir &) = delete;
};

void BM_seal(benchmark::State &st, sx_suite suite)
{
	const size_t plen = static_cast<size_t>(st.range(0));
	sx_err err{};
	Dir seal;
	if (!check(st, sx_rdir_init(&seal.d, suite, kSecret, kRotate, &err), err))
		return;
	std::vector<uint8_t> rec(SX_REC_HDR_LEN + plen + SX_REC_TAG_MAX, 0xa5);
	size_t rec_len = 0;
	for (auto _ : st) {
		// The buffer's content changes each round (it becomes ciphertext);
		// the cost does not depend on it.
		if (!check(st, sx_record_seal(&seal.d, SX_REC_DATA, 0, rec.data(), plen, &rec_len, &err),
			   err))
			return;
		benchmark::DoNotOptimize(rec.data());
		benchmark::ClobberMemory();
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(plen));
}

// Opening is in place, so a record can be opened once. A ring of records is
// sealed with the timer paused, opened one by one in sequence order, and
// sealed again (timer paused) when it is used up.
void BM_open(benchmark::State &st, sx_suite suite)
{
	const size_t plen = static_cast<size_t>(st.range(0));
	const size_t stride = SX_REC_HDR_LEN + plen + SX_REC_TAG_MAX;
	const size_t n = kRingBytes / plen < 4 ? 4 : kRingBytes / plen;
	sx_err err{};
	Dir seal, open;
	if (!check(st, sx_rdir_init(&seal.d, suite, kSecret, kRotate, &err), err) ||
	    !check(st, sx_rdir_init(&open.d, suite, kSecret, kRotate, &err), err))
		return;
	std::vector<uint8_t> ring(n * stride, 0x5a);
	std::vector<size_t> lens(n, 0);
	size_t next = n; // ring used up: seal before the first open
	for (auto _ : st) {
		if (next == n) {
			st.PauseTiming();
			for (size_t i = 0; i < n; i++) {
				if (!check(st, sx_record_seal(&seal.d, SX_REC_DATA, 0, &ring[i * stride], plen,
							      &lens[i], &err),
					   err))
					return;
			}
			next = 0;
			st.ResumeTiming();
		}
		uint8_t type = 0, flags = 0, *pt = nullptr;
		size_t pt_len = 0;
		if (!check(st, sx_record_open(&open.d, &ring[next * stride], lens[next], &type, &flags, &pt,
					      &pt_len, &err),
			   err))
			return;
		benchmark::DoNotOptimize(pt);
		next++;
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(plen));
}

// Record sizes of the performance issue: 16 KiB, 64 KiB, 256 KiB, 1 MiB.
void sizes(benchmark::internal::Benchmark *b)
{
	b->RangeMultiplier(4)->Range(16 << 10, 1 << 20);
}

} // namespace

BENCHMARK_CAPTURE(BM_seal, aes256gcm, SX_SUITE_AES256GCM)->Apply(sizes);
BENCHMARK_CAPTURE(BM_seal, aes256ctr_hmac, SX_SUITE_AES256CTR_HMAC)->Apply(sizes);
BENCHMARK_CAPTURE(BM_seal, chacha20poly1305, SX_SUITE_CHACHA20POLY1305)->Apply(sizes);
BENCHMARK_CAPTURE(BM_open, aes256gcm, SX_SUITE_AES256GCM)->Apply(sizes);
BENCHMARK_CAPTURE(BM_open, aes256ctr_hmac, SX_SUITE_AES256CTR_HMAC)->Apply(sizes);
BENCHMARK_CAPTURE(BM_open, chacha20poly1305, SX_SUITE_CHACHA20POLY1305)->Apply(sizes);
