"""One PKCS#11 module per process: loaded once, initialised for threads, re-initialised on demand.

python-pkcs11 calls ``C_Initialize(NULL)``, which tells a module that no two
threads will call it at once (SoftHSM2 then drops its locks, and parallel
signing fails with CKR_GENERAL_ERROR). :class:`Pkcs11Library` therefore
re-initialises the module with ``CKF_OS_LOCKING_OK`` (PKCS#11 v2.40 §5.4)
through its exported ``C_Initialize``; where that is impossible,
``serialize`` is True and calls are made one at a time.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

from certstatus.errors import SignerError

log = logging.getLogger("certstatus.signing.pkcs11")


def _pkcs11():
    """Import python-pkcs11 lazily: file keys must work without it loaded."""
    import pkcs11  # deferred: python-pkcs11 only for keys on a token

    return pkcs11


#: CK_C_INITIALIZE_ARGS.flags: the module may use the operating system's locking.
CKF_OS_LOCKING_OK = 0x2
CKR_OK = 0


class _InitializeArgs(ctypes.Structure):
    """CK_C_INITIALIZE_ARGS (PKCS#11 v2.40 §5.4): no mutex callbacks, OS locking allowed."""

    _fields_ = [
        ("create_mutex", ctypes.c_void_p), ("destroy_mutex", ctypes.c_void_p),
        ("lock_mutex", ctypes.c_void_p), ("unlock_mutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong), ("reserved", ctypes.c_void_p),
    ]  # fmt: skip


class Pkcs11Library:
    """One PKCS#11 module loaded in this process (shared by every key using it).

    ``generation`` counts re-initialisations: sessions opened in an older
    generation are invalid and their owners reopen them.

    python-pkcs11 calls ``C_Initialize(NULL)``, which tells the module that
    no two threads will call it at once (SoftHSM2 then drops its locks, and
    parallel signing fails with CKR_GENERAL_ERROR). So the module is
    re-initialised here with ``CKF_OS_LOCKING_OK`` through its exported
    ``C_Initialize``; when that is impossible, ``serialize`` is True and
    calls are made one at a time (correct, not parallel).
    """

    _loaded: dict[str, "Pkcs11Library"] = {}
    _loaded_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0
        self._pid = os.getpid()
        self.call_lock = threading.Lock()
        try:
            self._lib = _pkcs11().lib(path)
        except Exception as exc:  # python-pkcs11 raises several types for a bad module
            raise SignerError(
                f"cannot load the PKCS#11 module {path}: {str(exc) or type(exc).__name__}; "
                "give the vendor's library with --pkcs11-module or pkcs11_module (e.g. /usr/lib/softhsm/libsofthsm2.so)"
            ) from None
        self.serialize = not self._initialize_with_locking()
        if self.serialize:
            log.warning("PKCS#11 module %s cannot be initialised for threads: signing one call at a time", path)

    def _initialize_with_locking(self) -> bool:
        """``C_Finalize`` then ``C_Initialize(CKF_OS_LOCKING_OK)`` on the module; False if impossible."""
        try:
            module = ctypes.CDLL(self.path)  # the handle python-pkcs11 loaded: dlopen shares it
            module.C_Finalize.argtypes = [ctypes.c_void_p]
            module.C_Initialize.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            return False
        module.C_Finalize(None)
        args = _InitializeArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        result = module.C_Initialize(ctypes.byref(args))
        if result != CKR_OK:
            self._lib.reinitialize()  # back to python-pkcs11's own, single-threaded initialisation
            return False
        return True

    @classmethod
    def get(cls, path: str) -> "Pkcs11Library":
        """Return the loaded module ``path`` (loading it on first use)."""
        with cls._loaded_lock:
            library = cls._loaded.get(path)
            if library is None:
                library = cls._loaded[path] = cls(path)
            return library

    @property
    def lib(self):
        """The ``pkcs11.lib``; re-initialised first in a forked child."""
        if self._pid != os.getpid():
            with self.lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self.reinitialize(self.generation)
        return self._lib

    def reinitialize(self, seen_generation: int) -> None:
        """``C_Finalize`` + ``C_Initialize``, unless someone did it since ``seen_generation``.

        Every session of this module in this process becomes invalid.
        """
        with self.lock:
            if self.generation != seen_generation:
                return
            if self.serialize or not self._initialize_with_locking():
                try:
                    self._lib.reinitialize()
                except Exception as exc:  # CKR_CRYPTOKI_NOT_INITIALIZED after a fork, for one
                    log.debug("re-initialising %s: %s", self.path, exc)
                    self._lib.initialize()
            self.generation += 1
