#!/usr/bin/env bash
# Builds btdaq's own LEF reading and calibration code out of tree and runs it on a file,
# printing the sha256 of its float32 results (the expected values of
# tests/test_beamtest_real.py). Nothing of btdaq is committed: the code is pasted from a
# clone of bozzochet/btdaq (commit 7a73515) by line ranges, between small shims that
# stand in for ROOT and the class hierarchy, into a scratch directory.
#
#   tests/btdaq/make_reference.sh BTDAQ_CLONE L0_FILE [WORKDIR]
set -euo pipefail
btdaq=$1 file=$2 work=${3:-$(mktemp -d)}
show() { git -C "$btdaq" show "7a73515:$1"; }
mkdir -p "$work" && cd "$work"
{
cat <<'SHIM'
// Out-of-tree harness: btdaq's own DecodeDataAMSL0::ReadOneEventFromFile(FILE*), the
// decodestyle-0 reading loop of DecodeDataAMSL0::ProcessCalibration and
// DecodeData::ComputeCalibration, pasted verbatim (sed line ranges of bozzochet/btdaq
// 7a73515) between small shims that replace ROOT and the class hierarchy.
#include <algorithm>
#include <array>
#include <bitset>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

struct EventAMSL0 {
  static constexpr size_t GetNJINF() { return 1; }
  static constexpr size_t GetNTDRS() { return 1; }
  static constexpr size_t GetNVAS() { return 16; }
  static constexpr size_t GetNCHAVA() { return 64; }
  static constexpr size_t GetNADCS() { return 8; }
  short RawSignal[1][1][1024];
  uint32_t TimeStamp{0};
  uint64_t TimeStamp_ns{0};
  EventAMSL0(char *, char *) { Clear(); }
  void Clear() { std::memset(RawSignal, 0, sizeof(RawSignal)); }
};
struct calibAMSL0 {
  std::array<float, 1024> ped, rsig, sig;
  std::array<int, 1024> status;
  bool valid{true};
  std::array<std::vector<float>, 1024> cal_signale;
};
struct RHShim { unsigned GetTdrNum(unsigned) { return 0; } unsigned GetJinfNum(unsigned) { return 0; } };

struct DecodeData {
  int nJinf = 1;
  bool pri = false;
  std::vector<std::vector<std::vector<std::vector<float>>>> signals;
  std::vector<std::vector<std::vector<std::vector<float>>>> CNs;
  int ReadFile(void *ptr, size_t size, size_t nitems, FILE *stream);
  template <class Event, class calib, size_t njinf, size_t ntdr>
  void ComputeCalibration(std::array<std::array<calib, ntdr>, njinf> &cals);
};
struct DecodeDataAMSL0 : DecodeData {
  using EventAMSL0 = ::EventAMSL0;
  size_t m_total_size_consumed{0};
  double m_adcUnits = 1.0;
  int ntdrRaw = 1, ntdrCmp = 0;
  RHShim *rh = new RHShim;
  int ReadOneEventFromFile(FILE *file, EventAMSL0 *event);
};

SHIM
show trunkBT/Decode/src/DecodeData.cxx | sed -n 80,98p            # DecodeData::ReadFile
show trunkBT/Decode/src/DecodeDataAMSL0.cxx | sed -n 453,692p     # ReadOneEventFromFile(FILE*)
show trunkBT/Decode/include/DecodeData.hh | sed -n 737,1068p      # ComputeCalibration
cat <<'SHIM'
int main(int argc, char **argv) {
  DecodeDataAMSL0 d;
  const size_t NJINF = 1, NTDRS = 1, NVAS = 16, NCHAVA = 64;
  d.signals.assign(NJINF, std::vector<std::vector<std::vector<float>>>(NTDRS, std::vector<std::vector<float>>(NVAS * NCHAVA)));
  d.CNs.assign(NJINF, std::vector<std::vector<std::vector<float>>>(NTDRS, std::vector<std::vector<float>>(NVAS)));
  std::array<std::array<calibAMSL0, 1>, 1> cals{};
  FILE *calfile = fopen(argv[1], "r");
  auto event = std::make_unique<EventAMSL0>((char *)"", (char *)"");
  auto &signals = d.signals;
  auto *rh = d.rh;
  unsigned long nEvents = 0;
  FILE *times = fopen("times.txt", "w");
  // The decodestyle-0 loop of DecodeDataAMSL0::ProcessCalibration (ReadOneEventFromFile
  // through the object `d`; the event times written out as well).
      while (!feof(calfile) && nEvents < 10000) {
        event.get()->Clear();
        bool result = d.ReadOneEventFromFile(calfile, event.get());
        if (result)
          continue;
        nEvents++;
        fprintf(times, "%u %llu\n", event->TimeStamp, (unsigned long long)event->TimeStamp_ns);
        for (unsigned int iTdr_index = 0; iTdr_index < uint(d.ntdrRaw + d.ntdrCmp); ++iTdr_index) {
          unsigned int iTdr = rh->GetTdrNum(iTdr_index);
          unsigned int iJinf = rh->GetJinfNum(iTdr_index);
          for (unsigned int iCh = 0; iCh < NVAS * NCHAVA; ++iCh) {
            signals[iJinf][iTdr][iCh].push_back(event->RawSignal[iJinf][iTdr][iCh] / d.m_adcUnits);
          }
        }
      }
  fclose(times);
  fprintf(stderr, "events read: %lu\n", nEvents);
  d.ComputeCalibration<EventAMSL0, calibAMSL0, 1, 1>(cals);
  FILE *o = fopen("ped.f32", "wb"); fwrite(cals[0][0].ped.data(), 4, 1024, o); fclose(o);
  o = fopen("rsig.f32", "wb"); fwrite(cals[0][0].rsig.data(), 4, 1024, o); fclose(o);
  o = fopen("sig.f32", "wb"); fwrite(cals[0][0].sig.data(), 4, 1024, o); fclose(o);
  o = fopen("cn.f32", "wb");
  for (size_t v = 0; v < NVAS; ++v) fwrite(d.CNs[0][0][v].data(), 4, d.CNs[0][0][v].size(), o);
  fclose(o);
  o = fopen("raw.f32", "wb");
  for (size_t c = 0; c < NVAS * NCHAVA; ++c) fwrite(signals[0][0][c].data(), 4, signals[0][0][c].size(), o);
  fclose(o);
  fprintf(stderr, "valid %d, CN per VA %zu\n", (int)cals[0][0].valid, d.CNs[0][0][0].size());
  return 0;
}
SHIM
} > ref.cxx
g++ -std=c++17 -O3 -fPIC -w -o ref ref.cxx
./ref "$file"
python3 - <<'PY'
import hashlib
import numpy as np
n = len(open("times.txt").read().split("\n")) - 1
for name in ("ped", "rsig", "sig"):
    print(name, hashlib.sha256(np.fromfile(f"{name}.f32", np.float32).tobytes()).hexdigest())
cn = np.fromfile("cn.f32", np.float32).reshape(16, n).T
print("cn", hashlib.sha256(np.ascontiguousarray(cn).tobytes()).hexdigest())
raw = np.fromfile("raw.f32", np.float32).reshape(1024, n).T.astype(np.uint16)
print("adc", hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest())
PY
