// Linked into the `musafarm` binary only, with
// --wrap=<AddDescriptorsRunner's constructor> (cli/CMakeLists.txt): every
// generated .pb.cc, ours and protobuf's own, holds a static AddDescriptorsRunner
// whose constructor registers its .proto file with the generated pool at
// start-up, parsing the whole encoded FileDescriptorProto to index its names:
// ~0.4 ms of every CLI process, most of which never looks at a descriptor (a
// table, --version; issue 19). Wrapped to nothing, a file is registered on its
// first use instead: GetDescriptor() and reflection go through
// AssignDescriptors, which adds the file and its imports first. What is lost
// is finding a type by name in the generated pool before its file was used;
// the CLI does not (its JSON printer starts from the message it prints).

namespace google::protobuf::internal {
struct DescriptorTable;
}  // namespace google::protobuf::internal

// The name is AddDescriptorsRunner::AddDescriptorsRunner(const DescriptorTable*),
// mangled, with the linker's prefix for a wrapped symbol.
extern "C" void __wrap__ZN6google8protobuf8internal20AddDescriptorsRunnerC1EPKNS1_15DescriptorTableE(
    void* /*runner*/, const google::protobuf::internal::DescriptorTable* /*table*/) {}
