// RUN: lathe-opt %s -t llvm | filecheck %s

// Graph-level IR goes through the rest of the -O3 pipeline before LLVM IR is
// emitted: the kernel is there, not an empty LLVM module.
// CHECK: define void @nn_relu_0(ptr noalias nocapture align 16 %a0, ptr noalias nocapture align 16 %a1)
// CHECK: define void @nn_relu_0__packed(ptr %args)
func.func @main(%x: tensor<64xf32>) -> tensor<64xf32> {
  %0 = graph.nn.relu %x : (tensor<64xf32>) -> tensor<64xf32>
  func.return %0 : tensor<64xf32>
}
