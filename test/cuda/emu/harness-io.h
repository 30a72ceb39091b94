// Input and output of the SIMT-emulation harnesses (causal-conv1d-emu, modulate-emu, reduce-emu,
// scan-emu): each reads DIR/spec.txt and operands DIR/<name>.bin written by its test as float64
// (little-endian), and writes its outputs back the same way, so the tests compare plain float64.
//
// Include after simt.h and the kernel .cu: toStorage/fromStorage name common.cuh's Ty<T>.
#pragma once
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The case folder, argv[1] (set by harnessMain).
std::string dir;

std::vector<double> readBin(const std::string& name) {
  std::ifstream f(dir + "/" + name + ".bin", std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + name + ".bin");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<double> v(bytes.size() / 8);
  std::memcpy(v.data(), bytes.data(), v.size() * 8);
  return v;
}

void writeBin(const std::string& name, const std::vector<double>& v) {
  std::ofstream f(dir + "/" + name + ".bin", std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * 8));
}

std::ifstream openSpec() {
  std::ifstream f(dir + "/spec.txt");
  if (!f) throw std::runtime_error("cannot read spec.txt");
  return f;
}

// Calls line(key, rest) for each "key values..." line of spec.txt; unknown keys are the caller's to ignore.
template <class F> void forEachSpecLine(F&& line) {
  std::ifstream f = openSpec();
  std::string text;
  while (std::getline(f, text)) {
    std::istringstream in(text);
    std::string key;
    in >> key;
    line(key, in);
  }
}

// float64 values rounded to a kernel's storage type T, and back.
template <class T> std::vector<T> toStorage(const std::vector<double>& v) {
  std::vector<T> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = Ty<T>::store((typename Ty<T>::C)v[i]);
  return r;
}

template <class T> std::vector<double> fromStorage(const std::vector<T>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = (double)Ty<T>::load(v[i]);
  return r;
}

// main's shape for every harness: "NAME DIR", exit 2 on usage, 1 (message on stderr) when body throws.
template <class F> int harnessMain(int argc, char** argv, const char* name, F&& body) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", name);
    return 2;
  }
  dir = argv[1];
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace
