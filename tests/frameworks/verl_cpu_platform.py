"""A CPU platform for verl >= 0.9, which registers only nvidia/huawei/amd platforms and otherwise
falls back to "cuda". Import it before anything imports ``verl.workers.engine`` (the FSDP engine
reads the device name at import). Test shim only: verl has no CPU training support."""

import torch
from verl.plugin.platform import platform_manager
from verl.plugin.platform.platform_cuda import PlatformCUDA


class _CpuDeviceModule:
    """``torch.cpu`` plus the ``torch.cuda`` memory statistics verl logs (zero here)."""

    def __getattr__(self, name):
        if hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        if name == "get_device_name":
            return lambda *a: "CPU"
        if name == "mem_get_info":
            return lambda *a: (0, 0)
        if "memory" in name:
            return lambda *a, **k: 0
        raise AttributeError(name)


class PlatformCPU(PlatformCUDA):
    device_name = property(lambda self: "cpu")
    vendor_name = property(lambda self: "cpu")
    device_module = property(lambda self: _CpuDeviceModule())

    def is_available(self):
        return True

    def current_device(self):
        return torch.device("cpu")

    def set_device(self, index):
        pass

    def synchronize(self, index=None):
        pass

    def manual_seed(self, seed):
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def set_allocator_settings(self, settings):
        pass

    def empty_cache(self):
        pass

    def get_device_capability(self, index=0):
        return None, None

    def communication_backend_name(self):
        return "gloo"

    def ray_resource_name(self):
        return "CPU"

    def is_ipc_supported(self):
        return False


platform_manager.set_platform(PlatformCPU())
