// Merkle tree costs (RFC 9162 §2.1.1): leaf hashing, and the root over the
// leaf hashes of 1 GiB of file data.
//
// TODO: the lead is adding engine/sign/sx_manifest.h with sx_merkle_leaf() and
// sx_merkle_root(); once it is in this tree, call those instead of the EVP
// versions below so the benchmark measures the engine's own code.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <openssl/evp.h>

namespace {

const size_t kHash = 32;

// MTH({d0}) = SHA-256(0x00 || d0)
bool leaf_hash(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t *data, size_t len, uint8_t out[kHash])
{
	static const uint8_t prefix = 0x00;
	unsigned int n = 0;
	return EVP_DigestInit_ex(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, &prefix, 1) == 1 &&
	       EVP_DigestUpdate(ctx, data, len) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1;
}

// Interior node: SHA-256(0x01 || left || right)
bool node_hash(EVP_MD_CTX *ctx, const EVP_MD *md, const uint8_t l[kHash], const uint8_t r[kHash],
	       uint8_t out[kHash])
{
	uint8_t buf[1 + 2 * kHash];
	unsigned int n = 0;
	buf[0] = 0x01;
	std::memcpy(buf + 1, l, kHash);
	std::memcpy(buf + 1 + kHash, r, kHash);
	return EVP_DigestInit_ex(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, buf, sizeof(buf)) == 1 &&
	       EVP_DigestFinal_ex(ctx, out, &n) == 1;
}

// Root of n >= 1 leaf hashes, level by level, in place in work. An odd node
// at the end of a level moves up unchanged, which gives the same root as
// RFC 9162's split at the largest power of two below n.
bool merkle_root(EVP_MD_CTX *ctx, const EVP_MD *md, std::vector<uint8_t> &work, size_t n,
		 uint8_t out[kHash])
{
	while (n > 1) {
		size_t up = 0;
		for (size_t i = 0; i + 1 < n; i += 2, up++) {
			if (!node_hash(ctx, md, &work[i * kHash], &work[(i + 1) * kHash], &work[up * kHash]))
				return false;
		}
		if (n % 2 == 1) {
			std::memmove(&work[up * kHash], &work[(n - 1) * kHash], kHash);
			up++;
		}
		n = up;
	}
	std::memcpy(out, work.data(), kHash);
	return true;
}

struct Sha256 {
	EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	~Sha256()
	{
		EVP_MD_CTX_free(ctx);
		EVP_MD_free(md);
	}
	bool ok() const { return md != nullptr && ctx != nullptr; }
};

// Bytes per second: chunk bytes hashed into leaves.
void BM_merkle_leaf(benchmark::State &st)
{
	const size_t len = static_cast<size_t>(st.range(0));
	Sha256 h;
	if (!h.ok()) {
		st.SkipWithError("SHA-256 unavailable");
		return;
	}
	std::vector<uint8_t> chunk(len, 0x3c);
	uint8_t out[kHash];
	for (auto _ : st) {
		if (!leaf_hash(h.ctx, h.md, chunk.data(), len, out)) {
			st.SkipWithError("leaf hash failed");
			return;
		}
		benchmark::DoNotOptimize(out);
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(len));
}

// The root over 1 GiB of file data cut into leaves of range(0) bytes, from
// the leaf hashes (already computed while the data streamed). Bytes per
// second here are file bytes covered, so 1 / rate is the root's share of the
// cost of a GiB.
void BM_merkle_root_1GiB(benchmark::State &st)
{
	const size_t leaf = static_cast<size_t>(st.range(0));
	const size_t n = (size_t{1} << 30) / leaf;
	Sha256 h;
	if (!h.ok()) {
		st.SkipWithError("SHA-256 unavailable");
		return;
	}
	std::vector<uint8_t> leaves(n * kHash), work(n * kHash);
	for (size_t i = 0; i < leaves.size(); i++)
		leaves[i] = static_cast<uint8_t>(i * 131u + 7u);
	uint8_t root[kHash];
	for (auto _ : st) {
		// The copy (n * 32 bytes) is part of the cost; the root is computed in place.
		std::memcpy(work.data(), leaves.data(), leaves.size());
		if (!merkle_root(h.ctx, h.md, work, n, root)) {
			st.SkipWithError("node hash failed");
			return;
		}
		benchmark::DoNotOptimize(root);
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) << 30);
	st.counters["leaves"] = static_cast<double>(n);
}

} // namespace

BENCHMARK(BM_merkle_leaf)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_merkle_root_1GiB)->Arg(1 << 20)->Arg(64 << 10)->Unit(benchmark::kMicrosecond);
