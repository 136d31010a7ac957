// The floor under a transfer: what the CPU does per byte with no protocol
// around it. AES-256-GCM encryption and SHA-256 through OpenSSL's EVP, and
// memcpy, each over 1 MiB. bench/compare.sh prints these as seconds per GiB
// beside the CPU seconds per GiB that sxfer spends.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <openssl/evp.h>

namespace {

const size_t kLen = 1 << 20;

void BM_prim_memcpy(benchmark::State &st)
{
	std::vector<uint8_t> src(kLen, 0x11), dst(kLen);
	for (auto _ : st) {
		std::memcpy(dst.data(), src.data(), kLen);
		benchmark::DoNotOptimize(dst.data());
		benchmark::ClobberMemory();
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kLen));
}

void BM_prim_sha256(benchmark::State &st)
{
	std::vector<uint8_t> buf(kLen, 0x22);
	EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t out[32];
	unsigned int n = 0;
	if (md == nullptr || ctx == nullptr) {
		st.SkipWithError("SHA-256 unavailable");
		goto out;
	}
	for (auto _ : st) {
		if (EVP_DigestInit_ex(ctx, md, nullptr) != 1 || EVP_DigestUpdate(ctx, buf.data(), kLen) != 1 ||
		    EVP_DigestFinal_ex(ctx, out, &n) != 1) {
			st.SkipWithError("SHA-256 failed");
			goto out;
		}
		benchmark::DoNotOptimize(out);
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kLen));
out:
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
}

// One AEAD invocation per 1 MiB, a fresh IV each time (as a record does),
// with an 8-byte AAD like a record header.
void BM_prim_aead(benchmark::State &st, const char *name)
{
	std::vector<uint8_t> buf(kLen, 0x33);
	static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
	uint8_t iv[12] = {0}, aad[8] = {2, 0, 0, 0, 0, 0x10, 0, 0x10}, tag[16];
	uint64_t seq = 0;
	int outl = 0;
	EVP_CIPHER *c = EVP_CIPHER_fetch(nullptr, name, nullptr);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (c == nullptr || ctx == nullptr || EVP_EncryptInit_ex2(ctx, c, key, nullptr, nullptr) != 1) {
		st.SkipWithError("cipher unavailable");
		goto out;
	}
	for (auto _ : st) {
		seq++;
		std::memcpy(iv + 4, &seq, sizeof(seq));
		if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, iv, nullptr) != 1 ||
		    EVP_EncryptUpdate(ctx, nullptr, &outl, aad, sizeof(aad)) != 1 ||
		    EVP_EncryptUpdate(ctx, buf.data(), &outl, buf.data(), static_cast<int>(kLen)) != 1 ||
		    EVP_EncryptFinal_ex(ctx, tag, &outl) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, sizeof(tag), tag) != 1) {
			st.SkipWithError("encryption failed");
			goto out;
		}
		benchmark::DoNotOptimize(tag);
	}
	st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(kLen));
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
}

} // namespace

BENCHMARK(BM_prim_memcpy);
BENCHMARK(BM_prim_sha256);
BENCHMARK_CAPTURE(BM_prim_aead, aes256gcm, "AES-256-GCM");
BENCHMARK_CAPTURE(BM_prim_aead, chacha20poly1305, "ChaCha20-Poly1305");
