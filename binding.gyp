{
  "targets": [
    {
      "target_name": "perceiver",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('bindings').filter(f => f.endsWith('.cc')).filter(f => !f.startsWith('.')).map(f => 'bindings/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).filter(f => !f.startsWith('.')).map(f => 'native/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/cpu').filter(f => f.endsWith('.cc')).filter(f => !f.startsWith('.')).filter(f => !f.endsWith('_check.cc')).map(f => 'native/cpu/' + f).join(' ')\")"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fno-math-errno", "-Wall", "-Wno-unused-function"],
      "cflags": ["-O3"],
      "ldflags": ["-pthread", "<!@(node scripts/link-flags.mjs <(target_arch))"],
      "libraries": ["-ldl"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno"]
      },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] } }
    }
  ]
}
