// zstd compress and decompress of 1 MiB at levels 1 and 3, on compressible
// text (log lines) and on random bytes. Bytes per second are uncompressed
// bytes; the ratio is reported as a counter.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include <zstd.h>

namespace {

const size_t kLen = 1 << 20;

enum Input { kText = 0, kRandom = 1 };

// Deterministic input. Text: log lines of the kind a server writes (repeated
// keys, changing numbers), the case --compress auto is meant for. Random:
// incompressible, the case it must not slow down.
std::vector<uint8_t> make_input(Input kind)
{
	std::vector<uint8_t> v(kLen);
	std::mt19937_64 rng(42);
	if (kind == kRandom) {
		for (auto &b : v)
			b = static_cast<uint8_t>(rng());
		return v;
	}
	static const char *events[] = {"chunk_sent", "file_ok", "handshake", "ack", "io_wait"};
	size_t pos = 0;
	char line[160];
	for (unsigned i = 0; pos < kLen; i++) {
		int n = std::snprintf(line, sizeof(line),
				      "2024-05-01T12:%02u:%02u.%03uZ level=info event=%s conn=%u seq=%llu "
				      "bytes=%u peer=\"cam-%02u\"\n",
				      (i / 60000) % 60, (i / 1000) % 60, i % 1000, events[rng() % 5],
				      static_cast<unsigned>(rng() % 64), static_cast<unsigned long long>(i),
				      static_cast<unsigned>(rng() % 1048577), static_cast<unsigned>(rng() % 32));
		for (int k = 0; k < n && pos < kLen; k++)
			v[pos++] = static_cast<uint8_t>(line[k]);
	}
	return v;
}

void BM_zstd_compress(benchmark::State &st)
{
	const int level = static_cast<int>(st.range(0));
	const auto in = make_input(static_cast<Input>(st.range(1)));
	std::vector<uint8_t> out(ZSTD_compressBound(kLen));
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t n = 0;
	for (auto _ : st) {
		n = ZSTD_compressCCtx(cctx, out.data(), out.size(), in.data(), in.size(), level);
		if (ZSTD_isError(n)) {
			st.SkipWithError(ZSTD_getErrorName(n));
			break;
		}
		benchmark::DoNotOptimize(out.data());
	}
	ZSTD_freeCCtx(cctx);
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kLen));
	st.counters["ratio"] = n ? static_cast<double>(kLen) / static_cast<double>(n) : 0.0;
}

void BM_zstd_decompress(benchmark::State &st)
{
	const int level = static_cast<int>(st.range(0));
	const auto in = make_input(static_cast<Input>(st.range(1)));
	std::vector<uint8_t> comp(ZSTD_compressBound(kLen)), out(kLen);
	size_t clen = ZSTD_compress(comp.data(), comp.size(), in.data(), in.size(), level);
	if (ZSTD_isError(clen)) {
		st.SkipWithError(ZSTD_getErrorName(clen));
		return;
	}
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	for (auto _ : st) {
		size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), comp.data(), clen);
		if (ZSTD_isError(n) || n != kLen) {
			st.SkipWithError("decompression failed");
			break;
		}
		benchmark::DoNotOptimize(out.data());
	}
	ZSTD_freeDCtx(dctx);
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kLen));
	st.counters["ratio"] = static_cast<double>(kLen) / static_cast<double>(clen);
}

// Args: {level, input}; input 0 = text, 1 = random.
void cases(benchmark::internal::Benchmark *b)
{
	b->ArgNames({"level", "random"});
	for (int level : {1, 3})
		for (int input : {kText, kRandom})
			b->Args({level, input});
}

} // namespace

BENCHMARK(BM_zstd_compress)->Apply(cases);
BENCHMARK(BM_zstd_decompress)->Apply(cases);
