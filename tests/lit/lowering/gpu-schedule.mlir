// RUN: lathe-opt %s --split-input-file -p 'lower-graph-to-te,apply-default-schedule{gpu=true max_threads=128}' | filecheck %s --check-prefix=TE
// RUN: lathe-opt %s --split-input-file -p 'lower-graph-to-te,apply-default-schedule{gpu=true max_threads=128},lower-te-to-loop,cleanup-loops' | filecheck %s --check-prefix=LOOP
// RUN: lathe-opt %s --split-input-file -p 'lower-graph-to-te,apply-schedule{config="gpu_generic:block=32,per_thread=4" gpu=true},lower-te-to-loop,cleanup-loops' | filecheck %s --check-prefix=KNOBS
// RUN: not lathe-opt %s --split-input-file -p 'lower-graph-to-te,apply-schedule{config="gpu_generic:block=2048" gpu=true max_threads=1024}' 2>&1 | filecheck %s --check-prefix=LIMIT

// With gpu=true every kernel comes out bound: the injective producer (add) is inlined, the
// output's axes fused, split by the block size (128 threads: max_threads), the outer part
// bound to blockIdx.x and the inner to threadIdx.x; 400 elements need 4 blocks of 128, the
// split does not divide, so the body is guarded.
// TE-LABEL: func.func private @add_relu
// TE:      te.compute_inline %{{.*}}
// TE-NEXT: te.fuse %[[OUT:.*]] {fuse_axes = ["ax0", "ax1"], fused = "ax0.ax1.fused"}
// TE-NEXT: te.split %[[OUT]] {axis = "ax0.ax1.fused", factor = 128 : i64, outer = "ax0.ax1.fused.outer", inner = "ax0.ax1.fused.inner"}
// TE-NEXT: te.bind %[[OUT]] {axis = "ax0.ax1.fused.outer", thread_axis = "blockIdx.x"}
// TE-NEXT: te.bind %[[OUT]] {axis = "ax0.ax1.fused.inner", thread_axis = "threadIdx.x"}
// TE-NEXT: func.return

// LOOP-LABEL: func.func private @add_relu
// LOOP-DAG:  %[[C0:.*]] = arith.constant 0 : index
// LOOP-DAG:  %[[C4:.*]] = arith.constant 4 : index
// LOOP-DAG:  %[[C128:.*]] = arith.constant 128 : index
// LOOP-DAG:  %[[C400:.*]] = arith.constant 400 : index
// LOOP:      scf.for %[[B:.*]] = %[[C0]] to %[[C4]] step
// LOOP-NEXT:   scf.for %[[T:.*]] = %[[C0]] to %[[C128]] step
// LOOP-NEXT:     %[[M:.*]] = arith.muli %[[B]], %[[C128]] : index
// LOOP-NEXT:     %[[I:.*]] = arith.addi %[[M]], %[[T]] : index
// LOOP-NEXT:     %[[G:.*]] = arith.cmpi slt, %[[I]], %[[C400]] : index
// LOOP:          scf.if %[[G]] {
// LOOP:            arith.addf
// LOOP:            arith.maximumf
// LOOP:            memref.store
// LOOP:        } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
// LOOP-NEXT: } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}

// Four outputs per thread, 32 apart (consecutive threads, consecutive elements), unrolled.
// KNOBS-LABEL: func.func private @add_relu
// KNOBS:      scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// KNOBS-NEXT:   scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// KNOBS-NEXT:     scf.for
// KNOBS:          } {loop.annotation = #loop.annotation<unroll>}
// KNOBS-NEXT:   } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
// KNOBS-NEXT: } {loop.annotation = #loop.annotation<bind = "blockIdx.x">}

// LIMIT: error: @add_relu: knob 'block' of template 'gpu_generic' cannot be 2048
// LIMIT-NEXT: allowed values: 32, 64, 128, 256, 512, 1024
func.func @main(%x: tensor<4x100xf32>, %y: tensor<4x100xf32>) -> tensor<4x100xf32> {
  %0 = func.call @add_relu(%x, %y) : (tensor<4x100xf32>, tensor<4x100xf32>) -> tensor<4x100xf32>
  func.return %0 : tensor<4x100xf32>
}
func.func private @add_relu(%0: tensor<4x100xf32>, %1: tensor<4x100xf32>) -> tensor<4x100xf32> attributes {lathe.kernel} {
  %2 = graph.add %0, %1 : (tensor<4x100xf32>, tensor<4x100xf32>) -> tensor<4x100xf32>
  %3 = graph.nn.relu %2 : (tensor<4x100xf32>) -> tensor<4x100xf32>
  func.return %3 : tensor<4x100xf32>
}
