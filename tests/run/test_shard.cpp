// Shards: parsing "i/n" and the partition of (cell, replicate) pairs.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "gradflow/run/scenario.hpp"
#include "gradflow/run/shard.hpp"

using gradflow::InputError;
using gradflow::parse_shard;
using gradflow::Shard;

TEST_CASE("parse_shard reads i/n and rejects everything else with the constraint", "[shard]") {
  CHECK(parse_shard("0/1") == Shard{0, 1});
  CHECK(parse_shard("2/3") == Shard{2, 3});
  CHECK(parse_shard("1023/1024") == Shard{1023, 1024});
  CHECK(parse_shard("2/3").str() == "2/3");
  CHECK_THROWS_WITH(parse_shard("3/3"), Catch::Contains("0 <= i < n"));
  CHECK_THROWS_WITH(parse_shard("-1/3"), Catch::Contains("0 <= i < n"));
  CHECK_THROWS_WITH(parse_shard("0/0"), Catch::Contains("n must be >= 1"));
  CHECK_THROWS_WITH(parse_shard("1"), Catch::Contains("expected i/n"));
  CHECK_THROWS_WITH(parse_shard("a/3"), Catch::Contains("expected i/n"));
  CHECK_THROWS_WITH(parse_shard("1/3x"), Catch::Contains("expected i/n"));
  CHECK_THROWS_WITH(parse_shard("1 /3"), Catch::Contains("--shard = \"1 /3\""));
  CHECK_THROWS_AS(parse_shard(""), InputError);
}

TEST_CASE("shards 0..n-1 partition every (cell, replicate) exactly once, sizes within 1", "[shard]") {
  for (std::int64_t cells : {1, 7, 24}) {
    for (std::int64_t replicates : {1, 2, 5}) {
      for (std::int64_t n : {1, 2, 3, 7, 200}) {
        INFO("cells " << cells << ", replicates " << replicates << ", n " << n);
        std::vector<int> owners(static_cast<std::size_t>(cells * replicates), 0);
        std::int64_t smallest = cells * replicates, largest = 0, sum = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const Shard s{i, n};
          std::int64_t counted = 0;
          for (std::int64_t c = 0; c < cells; ++c)
            for (std::int64_t r = 0; r < replicates; ++r)
              if (s.contains(c, r, replicates)) {
                ++owners[static_cast<std::size_t>(c * replicates + r)];
                ++counted;
              }
          CHECK(s.size(cells, replicates) == counted);
          smallest = std::min(smallest, counted);
          largest = std::max(largest, counted);
          sum += counted;
        }
        CHECK(sum == cells * replicates);
        CHECK(largest - smallest <= 1);
        for (int o : owners) CHECK(o == 1);
      }
    }
  }
}
