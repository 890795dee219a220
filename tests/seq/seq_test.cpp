// Units of seq::: the worked examples of reference/virnucpro.md §2.1 (chunk table) and §2.3
// (identify_seq examples), plus the codon rules of §2.2.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "seq/chunking.h"
#include "seq/frames.h"
#include "seq/translate.h"

namespace vnp::seq {
namespace {

struct ChunkCase {
  std::size_t chunk_size, length;
  std::vector<ChunkSpan> spans;
};

// The table "Chunk coordinates produced by the original code [verified]" of §2.1.
const std::vector<ChunkCase> kChunkTable = {
    {500, 1, {{0, 1}}},
    {500, 500, {{0, 500}}},
    {500, 501, {{0, 500}, {250, 501}}},
    {500, 600, {{0, 500}, {299, 600}}},
    {500, 750, {{0, 500}, {374, 750}}},
    {500, 999, {{0, 500}, {499, 999}}},
    {500, 1000, {{0, 500}, {500, 1000}}},
    {500, 1001, {{0, 500}, {333, 833}, {666, 1001}}},
    {500, 1100, {{0, 500}, {366, 866}, {732, 1100}}},
    {500, 1501, {{0, 500}, {375, 875}, {750, 1250}, {1125, 1501}}},
    {500, 2345, {{0, 500}, {468, 968}, {936, 1436}, {1404, 1904}, {1872, 2345}}},
    {300, 301, {{0, 300}, {150, 301}}},
    {300, 750, {{0, 300}, {249, 549}, {498, 750}}},
    {300, 1001, {{0, 300}, {250, 550}, {500, 800}, {750, 1001}}},
    {300, 1499, {{0, 300}, {299, 599}, {599, 899}, {899, 1199}, {1199, 1499}}},
    {300, 2000, {{0, 300}, {285, 585}, {570, 870}, {855, 1155}, {1140, 1440}, {1425, 1725}, {1710, 2000}}},
};

TEST(Chunking, MatchesTheReferenceTable) {
  for (const auto& c : kChunkTable)
    EXPECT_EQ(chunk_spans(c.length, c.chunk_size), c.spans) << "C=" << c.chunk_size << " L=" << c.length;
}

TEST(Chunking, EmptySequenceHasNoChunks) {
  EXPECT_TRUE(chunk_spans(0, 500).empty());
}

TEST(Chunking, ShortSequenceIsOneChunk) {
  for (std::size_t length : {1u, 3u, 299u, 300u})
    EXPECT_EQ(chunk_spans(length, 300), (std::vector<ChunkSpan>{{0, length}}));
}

// The original tests `a > 1` on the nominal start k*C: with C = 1 the second chunk restarts at 0
// (worked by hand from units.py:9-36: L=3, C=1 -> moves [0,0,0], starts 0, 0, 2).
TEST(Chunking, ChunkSizeOneKeepsTheOriginalStartTest) {
  EXPECT_EQ(chunk_spans(3, 1), (std::vector<ChunkSpan>{{0, 1}, {0, 1}, {2, 3}}));
}

// Invariants of the rule for every length up to a few chunks: n = ceil(L/C) chunks, all but the
// last exactly C long, first at 0, last ending at L, starts increasing, no gap between chunks.
TEST(Chunking, InvariantsOverAllLengths) {
  for (std::size_t c : {300u, 500u}) {
    for (std::size_t length = 1; length <= 4 * c + 7; ++length) {
      const auto spans = chunk_spans(length, c);
      ASSERT_EQ(spans.size(), (length + c - 1) / c) << length;
      EXPECT_EQ(spans.front().begin, 0u);
      EXPECT_EQ(spans.back().end, length);
      for (std::size_t k = 0; k + 1 < spans.size(); ++k) {
        EXPECT_EQ(spans[k].length(), c) << "L=" << length << " k=" << k;
        EXPECT_LT(spans[k].begin, spans[k + 1].begin);
        EXPECT_LE(spans[k + 1].begin, spans[k].end) << "gap at L=" << length;
      }
      EXPECT_LE(spans.back().length(), c);
    }
  }
}

TEST(Chunking, ZeroChunkSizeIsRejected) {
  EXPECT_THROW(chunk_spans(10, 0), std::invalid_argument);
}

// The original's loop, transliterated from units.py:9-36 (moves summed chunk by chunk): the closed
// form of ChunkLayout::span must agree with it everywhere.
std::vector<ChunkSpan> loop_reference(std::size_t length, std::size_t c) {
  std::vector<ChunkSpan> out;
  const std::size_t n = (length + c - 1) / c;
  if (n == 0) return out;
  const std::size_t repeat = n * c - length, lower = repeat / n, need_up = repeat - lower * (n - 1);
  std::size_t shift = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t begin = k * c > 1 ? k * c - shift : 0;
    out.push_back({begin, std::min(begin + c, length)});
    shift += k < need_up ? lower + 1 : (k < n - 1 ? lower : 0);
  }
  return out;
}

TEST(Chunking, LayoutAgreesWithTheOriginalLoop) {
  for (std::size_t c : {1u, 2u, 3u, 7u, 300u, 500u})
    for (std::size_t length = 0; length <= 5 * c + 11; ++length)
      ASSERT_EQ(chunk_spans(length, c), loop_reference(length, c)) << "C=" << c << " L=" << length;
  for (std::size_t length : {1'000'003u, 200'000'000u}) {
    const ChunkLayout layout(length, 500);
    const auto reference = loop_reference(length, 500);
    ASSERT_EQ(layout.count(), reference.size());
    for (std::size_t k : {std::size_t{0}, std::size_t{1}, reference.size() / 2, reference.size() - 1})
      EXPECT_EQ(layout.span(k), reference[k]) << k;
  }
}

// --expected-length 18446744073709551615 once wrapped ceil(L/C) to 0 chunks: a chunk size beyond the
// record is one chunk, the whole record (as the original's arithmetic gives).
TEST(Chunking, HugeChunkSizesDoNotOverflow) {
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  for (std::size_t c : {max, max - 1, max / 2 + 1, std::size_t{1} << 40}) {
    EXPECT_EQ(chunk_spans(1, c), (std::vector<ChunkSpan>{{0, 1}})) << c;
    EXPECT_EQ(chunk_spans(12345, c), (std::vector<ChunkSpan>{{0, 12345}})) << c;
    EXPECT_TRUE(chunk_spans(0, c).empty());
  }
  EXPECT_EQ(chunk_spans(max, max), (std::vector<ChunkSpan>{{0, max}}));
  EXPECT_EQ(chunk_spans(max, max / 2 + 1).size(), 2u);
  FrameSplitter splitter(max);
  RecordFrames out;
  splitter.split(0, "r", "ATGAAATTT", out);
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].span, (ChunkSpan{0, 9}));
  EXPECT_FALSE(out.frames.empty());
}

TEST(Chunking, ChunksBeyondNumberingAreRefused) {
  FrameSplitter splitter(1);
  EXPECT_EQ(splitter.chunk_count(std::size_t{1} << 32 >> 1), std::size_t{1} << 31);
  EXPECT_THROW(splitter.chunk_count(std::size_t{1} << 33), std::length_error);
}

TEST(Chunking, ChunkIdCountsFromOne) {
  EXPECT_EQ(chunk_id("seq_1", 1), "seq_1_chunk_1");
  EXPECT_EQ(chunk_id("", 12), "_chunk_12");
}

TEST(Translate, StandardCodeWithStops) {
  const auto p = six_frame_proteins("ATGGCCTAAGGG");
  EXPECT_EQ(p[0], "MA*G");
  EXPECT_EQ(p[1], "WPK");
  EXPECT_EQ(p[2], "GLR");
  // Reverse complement CCCTTAGGCCAT.
  EXPECT_EQ(p[3], "PLGH");
  EXPECT_EQ(p[4], "P*A");
  EXPECT_EQ(p[5], "LRP");
}

TEST(Translate, AllSixtyFourCodons) {
  const std::string bases = "TCAG";
  std::string all;
  for (char a : bases)
    for (char b : bases)
      for (char c : bases) all += {a, b, c};
  // NCBI table 1 in TCAG order.
  EXPECT_EQ(six_frame_proteins(all)[0], "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG");
}

TEST(Translate, LowerCaseIsUpperCasedFirst) {
  EXPECT_EQ(six_frame_proteins("atggcctaa"), six_frame_proteins("ATGGCCTAA"));
}

TEST(Translate, UnknownCodonsAreDroppedNotStops) {
  // N, IUPAC, U and gaps make the codon unknown: skipped, frame not shifted.
  EXPECT_EQ(six_frame_proteins("ATGNNNGCCRTAUAA-CCAAA")[0], "MAK");
}

TEST(Translate, IupacIsNotComplemented) {
  std::string rc;
  reverse_complement("ACGTRYKMN", rc);
  EXPECT_EQ(rc, "NMKYRACGT");
  reverse_complement("acgtn", rc);
  EXPECT_EQ(rc, "nacgt");
}

TEST(Translate, OnlyCompleteCodons) {
  const auto p = six_frame_proteins("ATGG");
  EXPECT_EQ(p[0], "M");
  EXPECT_EQ(p[1], "W");
  EXPECT_EQ(p[2], "");
}

struct Expected {
  FrameTag tag;
  std::string nucleotide, protein;
};

void expect_frames(const std::string& chunk, const std::vector<Expected>& expected) {
  const auto frames = stop_free_frames(chunk);
  ASSERT_EQ(frames.size(), expected.size()) << chunk;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frame_suffix(frames[i].tag), frame_suffix(expected[i].tag)) << chunk << " #" << i;
    EXPECT_EQ(frames[i].nucleotide, expected[i].nucleotide) << chunk << " " << frame_suffix(frames[i].tag);
    EXPECT_EQ(frames[i].protein, expected[i].protein) << chunk << " " << frame_suffix(frames[i].tag);
  }
}

// The four worked examples of §2.3.
TEST(FrameSelection, ReferenceExamples) {
  using enum FrameTag;
  expect_frames("ACGTA", {{kF1, "ACGT", "T"},
                          {kF2, "CGTA", "R"},
                          {kF3, "GTA", "V"},
                          {kR1, "TACG", "Y"},
                          {kR2, "ACGT", "T"},
                          {kR3, "CGT", "R"}});
  expect_frames("ACGT", {{kF1, "ACGT", "T"},
                         {kF2, "CGT", "R"},
                         {kF3, "G", ""},
                         {kR1, "ACGT", "T"},
                         {kR2, "CGT", "R"},
                         {kR3, "G", ""}});
  expect_frames("ACGTNNNNNNNNNNNNNNNN", {{kF1, "ACGT", "T"},
                                         {kF2, "CGTN", "R"},
                                         {kF3, "G", ""},
                                         {kR1, "N", ""},
                                         {kR2, "NNNN", "T"},
                                         {kR3, "NNNN", "R"}});
}

TEST(FrameSelection, ReferenceExampleWithUnknownCodon) {
  const std::string chunk = "ATGAAACCCGGGTTTNNNAAAGGGCCCAAATTTGG";
  const auto frames = stop_free_frames(chunk);
  ASSERT_EQ(frames.size(), 5u);  // F2 has a stop
  EXPECT_EQ(frames[0].tag, FrameTag::kF1);
  EXPECT_EQ(frames[0].protein, "MKPGFKGPKF");
  EXPECT_EQ(frames[0].nucleotide, chunk.substr(0, 31));
  EXPECT_EQ(frames[1].tag, FrameTag::kF3);
  EXPECT_EQ(frames[1].protein, "ETRVRAQIW");
  EXPECT_EQ(frames[1].nucleotide.size(), 28u);
  EXPECT_EQ(frames[1].nucleotide, chunk.substr(2, 28));
  EXPECT_EQ(frames[2].tag, FrameTag::kR1);
  EXPECT_EQ(frames[3].tag, FrameTag::kR2);
  EXPECT_EQ(frames[4].tag, FrameTag::kR3);
}

TEST(FrameSelection, NucleotideIsUpperCase) {
  const auto frames = stop_free_frames("acgta");
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].nucleotide, "ACGT");
}

TEST(FrameSplitter, DropsEmptyProteinsAndNamesFrames) {
  FrameSplitter splitter(500);
  RecordFrames out;
  splitter.split(7, "rec", "ACGT", out);
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].id, "rec_chunk_1");
  std::vector<std::string> ids;
  for (const auto& f : out.frames) {
    EXPECT_EQ(f.record_index, 7u);
    EXPECT_EQ(f.chunk_number, 1u);
    EXPECT_FALSE(f.protein.empty());
    ids.push_back(f.id());
  }
  EXPECT_EQ(ids,
            (std::vector<std::string>{"rec_chunk_1F1", "rec_chunk_1F2", "rec_chunk_1R1", "rec_chunk_1R2"}));
}

TEST(FrameSplitter, EmptyRecordYieldsNothing) {
  FrameSplitter splitter(300);
  RecordFrames out;
  splitter.split(0, "a", "ACGTACGTAAAA", out);
  ASSERT_FALSE(out.chunks.empty());
  splitter.split(1, "empty", "", out);  // buffers reused, content overwritten
  EXPECT_TRUE(out.chunks.empty());
  EXPECT_TRUE(out.frames.empty());
}

TEST(FrameSplitter, ChunksKeepCaseAndOrder) {
  std::string seq(700, 'a');
  for (std::size_t i = 0; i < seq.size(); i += 7) seq[i] = 'C';
  FrameSplitter splitter(300);
  RecordFrames out;
  splitter.split(3, "x", seq, out);
  ASSERT_EQ(out.chunks.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(out.chunks[k].number, k + 1);
    EXPECT_EQ(out.chunks[k].id, "x_chunk_" + std::to_string(k + 1));
  }
  EXPECT_EQ(out.chunks[1].span, (ChunkSpan{233, 533}));  // n=3, R=200: overlap 67
  // Frames come chunk by chunk, F1..R3 within a chunk.
  for (std::size_t i = 1; i < out.frames.size(); ++i) {
    const auto& a = out.frames[i - 1];
    const auto& b = out.frames[i];
    EXPECT_TRUE(a.chunk_number < b.chunk_number || (a.chunk_number == b.chunk_number && a.tag < b.tag));
  }
}

// A record split a few chunks at a time gives exactly the chunks and frames of one split.
TEST(FrameSplitter, RangesConcatenateToTheWholeSplit) {
  std::string seq;
  std::uint32_t state = 1;
  for (int i = 0; i < 7777; ++i) seq += "ACGTacgtN"[(state = state * 1103515245 + 12345) >> 16 & 7];
  FrameSplitter splitter(300);
  RecordFrames whole, part;
  splitter.split(4, "rec", seq, whole);
  std::vector<Chunk> chunks;
  std::vector<std::string> frames;
  for (std::size_t first = 0; first < splitter.chunk_count(seq.size()); first += 4) {
    splitter.split_range(4, "rec", seq, first, first + 4, part);
    chunks.insert(chunks.end(), part.chunks.begin(), part.chunks.end());
    for (const auto& f : part.frames) frames.push_back(f.id() + f.nucleotide + f.protein);
  }
  ASSERT_EQ(chunks.size(), whole.chunks.size());
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    EXPECT_EQ(chunks[k].id, whole.chunks[k].id);
    EXPECT_EQ(chunks[k].span, whole.chunks[k].span);
    EXPECT_EQ(chunks[k].number, whole.chunks[k].number);
  }
  std::vector<std::string> expected;
  for (const auto& f : whole.frames) expected.push_back(f.id() + f.nucleotide + f.protein);
  EXPECT_EQ(frames, expected);
}

}  // namespace
}  // namespace vnp::seq
