// RUN: not lathe-opt %s -t x86-asm 2>&1 | filecheck %s

// xDSL's assembly and shader targets want xDSL's own low-level dialects: lathe-opt
// offers only the targets that take Lathe's IR, and a usage error exits 1.
// CHECK: usage: lathe-opt
// CHECK:      error: argument -t/--target: invalid choice: 'x86-asm' (choose from mlir, lathe,
// CHECK-SAME: llvm
// CHECK-NOT:  riscv-asm
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  func.return %x : tensor<4xf32>
}
