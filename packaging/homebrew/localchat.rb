# Homebrew formula skeleton for localchat.
#
# Before use: set url/sha256 to a release sdist, then generate the resource
# blocks for every Python dependency (llama-cpp-python, textual, ...) with
#   brew update-python-resources localchat
# llama-cpp-python is compiled from its sdist during `brew install`; on Apple
# Silicon its build turns Metal on by itself.  On Intel Macs and Linux the
# portable CPU flags below avoid -march=native (see packaging/README.md: AMX/VM SIGILL).
class Localchat < Formula
  include Language::Python::Virtualenv

  desc "Run quantized LLMs locally; picks the quant, GPU layers and context that fit"
  homepage "https://github.com/OWNER/localchat"
  url "https://files.pythonhosted.org/packages/source/l/localchat/localchat-0.1.0.tar.gz"
  sha256 "REPLACE_WITH_SDIST_SHA256"
  license "MIT"

  depends_on "cmake" => :build
  depends_on "python@3.12"

  # resource "llama-cpp-python" do ... end   # from `brew update-python-resources`
  # resource "textual" do ... end

  def install
    ENV["CMAKE_ARGS"] = "-DGGML_NATIVE=OFF" unless OS.mac? && Hardware::CPU.arm?
    virtualenv_install_with_resources
  end

  test do
    assert_match "localchat", shell_output("#{bin}/localchat --help")
    system bin/"localchat", "hw", "--no-build"
  end
end
